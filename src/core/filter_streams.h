/*
 * Filters' stream ports (vn_port_open_stream): one stream per connected
 * client, its frames pulled on the connection's own thread, and all of a
 * filter's streams closed before the filter goes.  The control socket and
 * its framing are the caller's (the daemon's "stream" verb).
 */
#ifndef VENEER_FILTER_STREAMS_H
#define VENEER_FILTER_STREAMS_H

#include <stddef.h>

#include "core/filter_manager.h"

struct fm_stream;

/*
 * Opens a stream on FILTER's stream port PORT ("": its first port) for a
 * client whose request is MSG (LEN bytes): 0 and *ret, or -ENOENT /
 * -EOPNOTSUPP (not a stream port) / what the filter's open returned, with
 * a one-line message in err.
 */
int fm_stream_open(const char *filter, const char *port, const void *msg, size_t len,
		   struct fm_stream **ret, char *err, size_t errlen);

/*
 * The next frame, waiting at most TIMEOUT_MS: 0 with *ret_frame
 * (malloc'd, NULL when nothing came) and *ret_len, or -errno to end the
 * stream (-ENOTCONN once the filter was unloaded, -EMSGSIZE for a frame
 * over VN_PORT_MAX_FRAME).
 */
int fm_stream_next(struct fm_stream *s, int timeout_ms, void **ret_frame, size_t *ret_len);

/* Ends S (the filter's close, unless an unload did it already) and frees it. */
void fm_stream_close(struct fm_stream *s);

/*
 * Closes every stream of F, waiting for a next() in progress: F is being
 * unloaded and its ports are no longer found.  Without the ports' lock.
 */
void fm_streams_close(struct vn_filter *f);

#endif
