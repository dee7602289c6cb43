/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libveneer-client: talk to the filters of a veneer mount from a user-mode
 * program (pkg-config veneer-client).
 *
 * A filter opens named ports (vn_port_open in <veneer/filter.h>) on its
 * mount's control socket; the mount's owner and root may send them
 * messages.  Each message is at most VN_CLIENT_MAX_MESSAGE bytes of any
 * content and gets one reply of at most the same size.  Functions return 0
 * or a negative errno, and on failure write a one-line message into err.
 */
#ifndef VENEER_CLIENT_H
#define VENEER_CLIENT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The same bound as VN_PORT_MAX_MESSAGE. */
#define VN_CLIENT_MAX_MESSAGE (64 * 1024)

/*
 * Sends LEN bytes of MSG to the port PORT of the filter named FILTER on the
 * mount at MOUNTPOINT (an absolute path without "." or ".." components;
 * PORT NULL or "": the first port the filter opened) and waits for the
 * reply, at most 60 s.  Returns 0 with *ret_reply (malloc'd, NUL-terminated
 * one byte past *ret_len, so a text reply can be printed as is; the caller
 * frees it).  Errors: -ENOENT (no veneer mount there, no such filter or
 * port), -EACCES (not the mount's owner or root), -EMSGSIZE (LEN over the
 * bound), -ETIMEDOUT, or the -errno the filter answered with.
 */
__attribute__((visibility("default")))
int vn_client_send(const char *mountpoint, const char *filter, const char *port,
		   const void *msg, size_t len, void **ret_reply, size_t *ret_len, char *err,
		   size_t errlen);

/*
 * Answers for a filter: the reply to one question, or -errno to leave it
 * unanswered (the filter then applies its default when it times out).
 * *ret_reply is malloc'd (freed by the library; NULL for an empty reply).
 */
typedef int vn_client_answer_fn(void *arg, const void *msg, size_t len, void **ret_reply,
				size_t *ret_len);

/*
 * Connects as the client of the port PORT of FILTER (one client per port
 * at a time) and calls ANSWER for every question the filter asks
 * (vn_port_ask), in order, on the calling thread, sending each reply back.
 * Runs until the daemon ends the stream (the filter was unloaded or the
 * mount went away: returns 0), *STOP becomes non-zero (checked at least
 * every 200 ms; returns 0), or an error (-errno with a message in err:
 * -EBUSY when the port has a client already).
 *
 * The filter does not ask about operations of this process (any of its
 * threads): a policy program may use the mount itself while it decides.
 * Its children are not excluded.
 */
__attribute__((visibility("default")))
int vn_client_listen(const char *mountpoint, const char *filter, const char *port,
		     vn_client_answer_fn *answer, void *arg, volatile int *stop, char *err,
		     size_t errlen);

/* The largest frame a stream port sends: the same bound as VN_PORT_MAX_FRAME. */
#define VN_CLIENT_MAX_FRAME (4 * 1024 * 1024)

/*
 * Receives one frame of a stream (LEN bytes, borrowed for the call, with a
 * NUL one byte past the end so text prints as is).  Returns 0 to go on, or
 * non-zero to end the stream (vn_client_stream returns that value).
 */
typedef int vn_client_frame_fn(void *arg, const void *frame, size_t len);

/*
 * (VENEER_CLIENT_2) Opens a stream on the stream port PORT of FILTER
 * (vn_port_open_stream; PORT NULL or "": the first port), sending LEN
 * bytes of MSG as the request (at most VN_CLIENT_MAX_MESSAGE; what it
 * means is the filter's), and calls ON_FRAME for every frame, in order, on
 * the calling thread.  Runs until the daemon ends the stream (the filter
 * was unloaded or the mount went away: returns 0), ON_FRAME returns
 * non-zero (that value), *STOP becomes non-zero (checked at least every
 * 200 ms; the frames the daemon still holds are received first, for at
 * most a second; returns 0), or an error (-errno with a message in err:
 * -ENOENT no such filter or port, -EOPNOTSUPP the port does not stream,
 * -EBUSY the mount serves too many streams, or what the filter's open
 * refused with).  Any number of clients may stream from one port.
 */
__attribute__((visibility("default")))
int vn_client_stream(const char *mountpoint, const char *filter, const char *port,
		     const void *msg, size_t len, vn_client_frame_fn *on_frame, void *arg,
		     volatile int *stop, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
