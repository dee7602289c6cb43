/*
 * Filters' communication ports: names a filter opened with vn_port_open(),
 * and the delivery of one client message to one of them.  The control
 * socket, its peer check and the framing are the caller's (the daemon's
 * control verbs); this knows only filters and ports.
 */
#ifndef VENEER_FILTER_PORTS_H
#define VENEER_FILTER_PORTS_H

#include <stddef.h>

#include "core/filter_manager.h"

/*
 * Delivers MSG (LEN bytes) to the port PORT of filter FILTER ("" PORT: the
 * first port it opened) and returns its reply (*ret_reply malloc'd or NULL,
 * *ret_len).  -ENOENT (no such filter or port), -EMSGSIZE (message or reply
 * over VN_PORT_MAX_MESSAGE) or what the filter returned, with a one-line
 * message in err.  On the control thread.
 */
int fm_port_send(const char *filter, const char *port, const void *msg, size_t len,
		 void **ret_reply, size_t *ret_len, char *err, size_t errlen);

/* The names of F's ports, comma-separated ("-" for none), into buf. */
void fm_port_names(struct vn_filter *f, char *buf, size_t size);

#endif
